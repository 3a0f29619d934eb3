"""DNS header opcodes."""

from proxycore.net.dns._codes import CodeTable

QUERY = 0
IQUERY = 1
STATUS = 2
NOTIFY = 4
UPDATE = 5
DSO = 6

_TABLE = CodeTable(
    "OPCODE",
    {"QUERY": QUERY, "IQUERY": IQUERY, "STATUS": STATUS, "NOTIFY": NOTIFY, "UPDATE": UPDATE, "DSO": DSO},
)
to_str = _TABLE.to_str
from_str = _TABLE.from_str
