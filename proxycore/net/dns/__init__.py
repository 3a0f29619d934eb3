"""DNS wire format pieces: code tables, domain names, HTTPS (SVCB) records."""
