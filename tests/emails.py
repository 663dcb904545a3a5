"""Addresses that must not register beside ``homo@example.com`` (REST, gRPC, admin)."""

FULLWIDTH_E = "\uff45"  # FULLWIDTH LATIN SMALL LETTER E
ZWSP = "\u200b"
SOFT_HYPHEN = "\u00ad"

# Spellings of homo@example.com that must not make a second account.
LOOKALIKES = [
    f"homo@{FULLWIDTH_E}xample.com",
    "HOMO@EXAMPLE.COM",
    "homo@example\uff0ecom",  # fullwidth full stop
    "\uff48omo@example.com",  # fullwidth h in the local part
]
INVISIBLE = [
    f"homo@example.com{ZWSP}",
    f"homo@exa{SOFT_HYPHEN}mple.com",
    f"ho{ZWSP}mo@example.com",
    "homo\u2060@example.com",  # word joiner
    "homo@example.com\ufeff",  # byte order mark
    "homo@example.com\U000e0041",  # tag latin capital A
    "homo@exa\u200dmple.com",  # zero width joiner
]
