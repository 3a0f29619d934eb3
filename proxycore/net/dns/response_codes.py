"""DNS response codes, and the HTTP status the web UI shows for each."""

from proxycore.net.dns._codes import CodeTable

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
YXDOMAIN = 6
YXRRSET = 7
NXRRSET = 8
NOTAUTH = 9
NOTZONE = 10
DSOTYPENI = 11

_TABLE = CodeTable(
    "RCODE",
    {
        "NOERROR": NOERROR, "FORMERR": FORMERR, "SERVFAIL": SERVFAIL, "NXDOMAIN": NXDOMAIN,
        "NOTIMP": NOTIMP, "REFUSED": REFUSED, "YXDOMAIN": YXDOMAIN, "YXRRSET": YXRRSET,
        "NXRRSET": NXRRSET, "NOTAUTH": NOTAUTH, "NOTZONE": NOTZONE, "DSOTYPENI": DSOTYPENI,
    },
)
to_str = _TABLE.to_str
from_str = _TABLE.from_str

# (rcode, HTTP status) pairs; anything else counts as 500.
_HTTP = {
    NOERROR: 200, FORMERR: 400, SERVFAIL: 500, NXDOMAIN: 404, NOTIMP: 501, REFUSED: 403,
    YXDOMAIN: 409, YXRRSET: 409, NXRRSET: 410, NOTAUTH: 401, NOTZONE: 404, DSOTYPENI: 501,
}


def http_equiv_status_code(response_code: int) -> int:
    return _HTTP.get(response_code, 500)
