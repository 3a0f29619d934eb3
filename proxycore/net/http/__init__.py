"""HTTP helpers at mitmproxy's paths: ``mitmproxy.net.http.status_codes`` and ``.url``."""
