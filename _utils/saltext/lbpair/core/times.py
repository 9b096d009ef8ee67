"""Times as lbpair writes and reads them: ISO 8601 in UTC."""

import datetime


def iso_utc(epoch):
    """Epoch seconds as ISO 8601 UTC with microseconds (``2026-11-26T13:11:23.398471+00:00``)."""
    return datetime.datetime.fromtimestamp(float(epoch), datetime.timezone.utc).isoformat(timespec="microseconds")


def parse(value):
    """An aware datetime from ISO 8601 text or epoch seconds; ``None`` (or ``""``) stays ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) or str(value).replace(".", "", 1).isdigit():
        return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc)
    parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)
