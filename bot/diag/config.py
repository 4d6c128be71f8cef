"""The ``[diagnose]`` section of the config file.

```toml
[diagnose]
dnsbl_zones = ["zen.spamhaus.org", "bl.spamcop.net"]
nameservers = ["127.0.0.1"]   # the bot's resolver for diagnose; empty: the system's
nameserver_port = 53
probe_domains = ["gmail.com", "outlook.com", "yahoo.com"]
check_timeout = "8s"          # how long each check may take
budget = "20s"                # how long the whole diagnosis may take
[diagnose.sending_ips]        # a host's public sending address, when NAT hides it
mx1 = ["203.0.113.25"]
[diagnose.relay_providers]    # relay hosts known by another name (bot/diag/relays.py)
"relay.example.net" = "sendgrid"   # or "ses:eu-west-1", "mailgun", "postmark"
```
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.config_checks import Seconds
from bot.diag.relays import valid_alias

# Public DNSBLs that answer queries from ordinary resolvers for low volumes. Spamhaus
# refuses queries that come through large public resolvers (it answers 127.255.255.x).
DEFAULT_ZONES = ("zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org", "psbl.surriel.com")
DEFAULT_PROBES = ("gmail.com", "outlook.com", "yahoo.com")
_ZONE = re.compile(r"(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


class DiagnoseSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dnsbl_zones: list[str] = Field(default_factory=lambda: list(DEFAULT_ZONES))
    nameservers: list[str] = Field(default_factory=list)
    nameserver_port: Annotated[int, Field(ge=1, le=65535)] = 53
    probe_domains: list[str] = Field(default_factory=lambda: list(DEFAULT_PROBES), max_length=5)
    check_timeout: Annotated[Seconds, Field(gt=0, le=120)] = 8.0
    budget: Annotated[Seconds, Field(gt=0, le=300)] = 20.0
    sending_ips: dict[str, list[str]] = Field(default_factory=dict)
    relay_providers: dict[str, str] = Field(default_factory=dict)

    @field_validator("dnsbl_zones", "probe_domains")
    @classmethod
    def _zones(cls, value: list[str]) -> list[str]:
        for zone in value:
            if not _ZONE.fullmatch(zone):
                raise ValueError(f"{zone!r} is not a lower-case DNS name")
        return value

    @field_validator("nameservers")
    @classmethod
    def _nameservers(cls, value: list[str]) -> list[str]:
        for address in value:
            ipaddress.ip_address(address)  # raises ValueError: reported with its location
        return value

    @field_validator("sending_ips")
    @classmethod
    def _sending_ips(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for addresses in value.values():
            for address in addresses:
                ipaddress.ip_address(address)
        return value

    @field_validator("relay_providers")
    @classmethod
    def _relay_providers(cls, value: dict[str, str]) -> dict[str, str]:
        for host, spec in value.items():
            if not _ZONE.fullmatch(host):
                raise ValueError(f"{host!r} is not a lower-case DNS name")
            if not valid_alias(spec):
                raise ValueError(
                    f"{spec!r}: want sendgrid, ses, ses:REGION (ses:eu-west-1), mailgun or postmark"
                )
        return value

    @model_validator(mode="after")
    def _budget(self) -> DiagnoseSection:
        if self.budget < self.check_timeout:
            raise ValueError("budget must be at least check_timeout")
        return self
