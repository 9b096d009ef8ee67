"""
Metrics in Prometheus' text exposition format (0.0.4), as node_exporter's textfile
collector reads them (``*.prom`` files in ``--collector.textfile.directory``).

A metric family is a name, a type, a help text and its samples; a sample is a
mapping of labels and a value. Label values come from untrusted places (a node's
instance names, certificate names): they are escaped here, and names are checked
so that a value can never add a line or a metric of its own.

.. code-block:: python

    text = render([Family("lbpair_haproxy_up", "gauge", "HAProxy answers.", [Sample({"pair": "web"}, 1)])])
    publish("/var/lib/prometheus/node-exporter/lbpair.prom", text)
"""

import math
import re
from dataclasses import dataclass, field

from saltext.lbpair.core import store

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "untyped")


@dataclass(frozen=True)
class Sample:
    labels: dict
    value: float
    suffix: str = ""  # "_bucket", "_sum" or "_count" for a histogram's series


@dataclass(frozen=True)
class Family:
    name: str
    type: str
    help: str
    samples: list = field(default_factory=list)


def escape_label_value(value):
    """A label value as the format quotes it: backslash, double quote and line feed escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text):
    return str(text).replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value):
    """A sample value: integers without a fraction, and the format's own words for infinities and NaN."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _labels(labels):
    for name in labels:
        if not LABEL.match(name) or name.startswith("__"):
            raise ValueError(f"not a Prometheus label name: {name!r}")
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{escape_label_value(value)}"' for name, value in labels.items()) + "}"


def _family_lines(family):
    if not NAME.match(family.name) or family.type not in TYPES:
        raise ValueError(f"not a Prometheus metric family: {family.name!r} of type {family.type!r}")
    yield f"# HELP {family.name} {_escape_help(family.help)}"
    yield f"# TYPE {family.name} {family.type}"
    for sample in family.samples:
        yield f"{family.name}{sample.suffix}{_labels(sample.labels)} {format_value(sample.value)}"


def render(families):
    """The text of ``families``, each once, in the order given (a family's samples stay together, as the format wants)."""
    names = [family.name for family in families]
    if len(names) != len(set(names)):
        raise ValueError("a metric family appears twice")
    return "".join(f"{line}\n" for family in families for line in _family_lines(family))


def histogram(labels, observations, buckets):
    """The samples of a histogram of ``observations`` (cumulative ``le`` buckets, ``+Inf``, sum and count)."""
    observations = list(observations)
    within = {bound: sum(1 for seen in observations if seen <= bound) for bound in buckets}
    return counted_histogram(labels, within, sum(observations), len(observations))


def counted_histogram(labels, within, total, count):
    """
    The samples of a histogram kept as counts (a counter survives its process): ``within``
    ``{bound: observations <= bound}``, then ``+Inf`` (``count``), the ``total`` and ``count``.
    """
    samples = [Sample({**labels, "le": format_value(bound)}, within[bound], "_bucket") for bound in sorted(within)]
    samples.append(Sample({**labels, "le": format_value(math.inf)}, count, "_bucket"))
    samples.append(Sample(dict(labels), total, "_sum"))
    samples.append(Sample(dict(labels), count, "_count"))
    return samples


def publish(path, text):
    """Replace the file ``path`` by ``text`` atomically: the collector reads the old file or the new one, never a part."""
    store.write_atomic(path, text)
