"""Relay providers' refusals, as published, with where each text comes from.

Each case: (provider key, expected kind, the provider's reply as published, origin). The tests
wrap each reply the way Postfix quotes it in a delay or bounce reason ("host X[addr] said:
REPLY (in reply to ... command)"), with the provider's real SMTP host name.
"""

from __future__ import annotations

HOSTS = {
    "sendgrid": "smtp.sendgrid.net",
    "ses": "email-smtp.us-east-1.amazonaws.com",
    "mailgun": "smtp.mailgun.org",
    "postmark": "smtp.postmarkapp.com",
}

CASES: list[tuple[str, str, str, str]] = [
    (
        "ses",
        "sender_unverified",
        "554 Message rejected: Email address is not verified. The following identities failed "
        "the check in region US-EAST-1: b_nnqwq4tfmn3wi3lsmfwa_gvtgimrvmy4ta@domain.com...",
        "a Postfix log line posted in https://github.com/anonaddy/anonaddy/issues/647; the "
        "wording is also in https://repost.aws/knowledge-center/ses-554-400-message-rejected-error",
    ),
    (
        "ses",
        "quota",
        "454 Throttling failure: Daily message quota exceeded.",
        "https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html; seen in "
        "https://github.com/efforg/action-center-platform/issues/874",
    ),
    (
        "ses",
        "rate",
        "454 Throttling failure: Maximum sending rate exceeded.",
        "https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html",
    ),
    (
        "ses",
        "credentials",
        "535 Authentication Credentials Invalid",
        "https://github.com/mautic/mautic/issues/3704 (an SMTP transcript with SES), "
        "https://github.com/knadh/listmonk/issues/2160 (IAM user keys instead of SMTP credentials)",
    ),
    (
        "ses",
        "auth_missing",
        "530 Authentication required",
        "a Postfix bounce from email-smtp.ap-southeast-1.amazonaws.com in "
        "https://github.com/Billionmail/BillionMail/issues/156",
    ),
    (
        "ses",
        "tls_missing",
        "530 Must issue a STARTTLS command first",
        "a sendmail transcript with email-smtp.us-east-1.amazonaws.com, "
        "https://pastebin.com/t22G4F69",
    ),
    (
        "ses",
        "suspended",
        "554 Message rejected: Sending paused for this account. For more information, please "
        "check the inbox of the email address associated with your AWS account.",
        "an SMTP send through SES quoted in https://github.com/abbeymart/mcmail "
        "(sendMail_test.go); the same text in https://github.com/hcengineering/platform/issues/8899",
    ),
    (
        "ses",
        "suspended",
        "554 Message rejected: Sending suspended for this account. For more information, please "
        "check the inbox of the email address associated with your AWS account.",
        "the older wording, in CiviCRM's test of SMTP errors (https://github.com/civicrm/"
        "civicrm-core, tests/phpunit/CRM/Mailing/BAO/MailingJobTest.php)",
    ),
    (
        "sendgrid",
        "sender_unverified",
        "550 The from address does not match a verified Sender Identity. Mail cannot be sent "
        "until this error is resolved. Visit https://sendgrid.com/docs/for-developers/"
        "sending-email/sender-identity/ to see the Sender Identity requirements",
        "https://github.com/sahat/hackathon-starter/issues/1083, "
        "https://github.com/chatwoot/chatwoot/issues/2541",
    ),
    (
        "sendgrid",
        "credentials",
        "535 Authentication failed: Bad username / password",
        "an SMTP transcript with smtp.sendgrid.net in https://github.com/sendgrid/docs/issues/2491;"
        " the cause (a user name other than apikey): https://github.com/sendgrid/docs/pull/6171",
    ),
    (
        "sendgrid",
        "credentials",
        "535 Authentication failed: The provided authorization grant is invalid, expired, or "
        "revoked",
        "https://github.com/sendgrid/docs/issues/3947",
    ),
    (
        "sendgrid",
        "auth_missing",
        "550 Unauthenticated senders not allowed",
        "https://github.com/sendgrid/sendgrid-python/issues/114, "
        "https://github.com/sendgrid/docs/issues/6473",
    ),
    (
        "sendgrid",
        "quota",
        "451 Authentication failed: Maximum credits exceeded",
        "https://www.twilio.com/docs/sendgrid/for-developers/sending-email/"
        "smtp-errors-and-troubleshooting",
    ),
    (
        "mailgun",
        "recipient_unverified",
        "421 Domain sandboxdf3479ebf6574f74ae2b802abc2ae513.mailgun.org is not allowed to send: "
        "Sandbox subdomains are for test purposes only. Please add your own domain or add the "
        "address to authorized recipients in Account Settings.",
        "https://github.com/baserow/baserow/issues/1776 (SMTPDataError 421)",
    ),
    (
        "mailgun",
        "recipient_unverified",
        "421 Domain example.com is not allowed to send: Free accounts are for test purposes "
        "only. Please upgrade or add the address to authorized recipients in Account Settings.",
        "the older free-plan wording, https://github.com/mailgun/wordpress-plugin/issues/68",
    ),
    (
        "mailgun",
        "sender_unverified",
        "550 5.7.1 Relaying denied",
        "https://github.com/axllent/mailpit/issues/337 (relaying through Mailgun)",
    ),
    (
        "mailgun",
        "credentials",
        "535 5.7.0 Mailgun is not loving your login or password",
        "https://github.com/mailgun/documentation/issues/132, "
        "https://github.com/azamuddin/mautic-mailgun-plugin/issues/1",
    ),
    (
        "postmark",
        "sender_unverified",
        "550 The 'From' address you supplied (news@shop.example) is not a Sender Signature on "
        "your account. Please add and confirm this address in order to be able to use it in "
        "the 'From' field of your messages.",
        "the text from https://github.com/feedadoc/feedadoc/pull/110 (its reply code there is "
        "not shown; 550 here)",
    ),
    (
        "postmark",
        "credentials",
        "535 5.7.8 Authentication credentials invalid",
        "Postmark documents that SMTP needs the Server API token as both user name and "
        "password (https://postmarkapp.com/support/article/common-smtp-connection-errors); "
        "the 535 wording here is RFC 4954's",
    ),
]

# Replies that must not be taken for a provider refusal.
NOT_PROVIDER = [
    # a 535 from a server that is not a known provider: the generic relay_auth verdict's job
    "SASL authentication failed; server mx.authfail.test[127.0.0.8] said: 535 5.7.8 Error: "
    "authentication failed: authentication failure",
    # "Relaying denied" from an ordinary server
    "host mx.example.net[192.0.2.1] said: 554 5.7.1 <a@b.example>: Relay access denied "
    "(in reply to RCPT TO command)",
    "host mx.example.net[192.0.2.1] said: 550 5.7.1 Relaying denied (in reply to RCPT TO command)",
]
