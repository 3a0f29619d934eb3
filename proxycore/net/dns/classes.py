"""DNS classes (RFC 1035 and later)."""

from proxycore.net.dns._codes import CodeTable

IN = 1
CH = 3
HS = 4
NONE = 254
ANY = 255

_TABLE = CodeTable("CLASS", {"IN": IN, "CH": CH, "HS": HS, "NONE": NONE, "ANY": ANY})
to_str = _TABLE.to_str
from_str = _TABLE.from_str
