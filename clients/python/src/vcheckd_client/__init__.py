"""vcheckd client (protocol v2): report the running version with one DNS
lookup and get the zone's signed release policy back.

::

    from vcheckd_client import Client

    client = Client("vc.example.com", "/usr/share/myproduct/vc.public", "2.3.1",
                    cluster_id=install_id, node_id=hostname)
    result = client.check()
    print(result.status.label, result.message)

:class:`Client` runs one check, :class:`Agent` runs it periodically. The
protocol is docs/PROTOCOL.md §15-§22 of the vcheckd repository; every value
this package computes is checked against docs/vectors/v2.json.
"""

from .agent import Agent, AgentSnapshot, AgentStatus
from .client import CheckResult, Client, DryRun, LastKnown
from .dns import NameServer
from .errors import (
    CheckDisabled,
    ConfigError,
    DnsError,
    DnsNetworkError,
    DnsRcodeError,
    DnsTimeout,
    PolicyError,
    ReportError,
    StateError,
    VcheckdError,
)
from .keys import PublicKey
from .policy import Policy
from .release import Status, Verdict

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentSnapshot",
    "AgentStatus",
    "CheckDisabled",
    "CheckResult",
    "Client",
    "ConfigError",
    "DnsError",
    "DnsNetworkError",
    "DnsRcodeError",
    "DnsTimeout",
    "DryRun",
    "LastKnown",
    "NameServer",
    "Policy",
    "PolicyError",
    "PublicKey",
    "ReportError",
    "StateError",
    "Status",
    "VcheckdError",
    "Verdict",
    "__version__",
]
