"""Verdicts from the bot's DNS checks: DNSBL listings and refusals, SPF/DKIM soft rejects.
Pure functions (their words: ``templates/diagnose_wording.j2``)."""

from __future__ import annotations

from bot.diag.model import Evidence, Fact, Verdict, class_fact, fact, flush_button


def blocklisted(ev: Evidence) -> list[Verdict]:
    found = []
    for address, listing in ev.listings:
        if listing.status != "listed":
            continue
        lists = " ".join(listing.lists)
        facts = [
            fact(
                "listed",
                address=address,
                zone=listing.zone,
                codes=" ".join(listing.codes) + (f": {lists}" if lists else ""),
                reason=listing.reason or "(no TXT)",
            )
        ]
        if ev.queue and ev.queue.by_check.get("dnsbl"):
            facts.append(fact(
                "dnsbl_refusals",
                count=ev.queue.by_check["dnsbl"],
                sample=ev.queue.check_samples.get("dnsbl", ""),
            ))  # fmt: skip
        elif ev.queue and ev.queue.by_class.get("blocklisted"):
            facts.append(class_fact(ev.queue, "blocklisted"))
        kind = "policy_listed" if listing.lists and set(listing.lists) == {"PBL"} else "blocklisted"
        found.append(Verdict(kind, tuple(facts), {"zone": listing.zone, "address": address}))
    return found


def dnsbl_refused(ev: Evidence) -> list[Verdict]:
    """A list that refused the bot's queries (127.255.255.x): not a listing, and not checked."""
    zones: dict[str, list[Fact]] = {}
    for address, listing in ev.listings:
        if listing.status == "refused":
            zones.setdefault(listing.zone, []).append(
                fact(
                    f"dnsbl_refused_{listing.refusal}",
                    zone=listing.zone,
                    address=address,
                    codes=" ".join(listing.codes),
                )
            )
    return [
        Verdict(
            "dnsbl_refused", tuple(facts), {"zone": zone, "address": facts[0].values["address"]}
        )
        for zone, facts in zones.items()
    ]


def sender_auth(ev: Evidence) -> Verdict | None:
    queue = ev.queue
    if queue is None or not queue.sender_auth_rejects:
        return None
    facts = [fact("auth_rejects", count=queue.sender_auth_rejects, sample=queue.sender_auth_sample)]
    for sender in ev.senders:
        facts.append(
            fact(
                "spf",
                domain=sender.domain,
                record=sender.spf or "(none)",
                result=sender.spf_result,
                dmarc=sender.dmarc_policy or "(none)",
            )
        )
    button = (
        flush_button(ev, domain=ev.domain) if ev.domain else flush_button(ev, reason="blocklisted")
    )
    senders = ", ".join(s.domain for s in ev.senders) or ", ".join(queue.sender_auth_senders)
    return Verdict(
        "sender_auth", tuple(facts), {"senders": senders or "the sender domains"}, button=button
    )
