"""
The time axis of the report's timelines (:mod:`saltext.lbpair.master.report_svg`): linear, except
for the long quiet stretches. A failover takes seconds and a history spans weeks: drawn to one
scale, a whole failover would be one line. So the longest stretch in which nothing changed is
drawn narrow (:data:`QUIET_WIDTH`, marked as a break on the axis) as long as it is longer than the
rest of the span still drawn to scale, and then the next longest, and so on (only stretches of
:data:`QUIET_MIN` or more); the rest shares the width in proportion to its time.
"""

import bisect
import dataclasses
import itertools

QUIET_MIN = 600.0  # s: a shorter stretch is always drawn to scale
QUIET_WIDTH = 24.0  # px: a quiet stretch's width


@dataclasses.dataclass(frozen=True)
class Stretch:
    """The times from ``start`` to ``end`` drawn from ``left`` to ``right``; ``quiet``: drawn narrow, not to scale."""

    start: float
    end: float
    left: float
    right: float
    quiet: bool = False


class Scale:
    """Epoch seconds from ``start`` to ``end`` onto x from ``left`` to ``right``, the quiet stretches between ``moments`` narrow."""

    def __init__(self, start, end, left, right, moments=()):
        end = max(end, start + 1.0)
        cuts = sorted({start, end, *(moment for moment in moments if start < moment < end)})
        quiet = _quiet(list(itertools.pairwise(cuts)), end - start)
        self.stretches = _laid_out(_runs(cuts, quiet), left, right)
        self.starts = [stretch.start for stretch in self.stretches]

    @property
    def start(self):
        return self.stretches[0].start

    @property
    def end(self):
        return self.stretches[-1].end

    def x(self, epoch):
        """Where ``epoch`` is drawn (clamped to the axis), rounded to 0.1."""
        epoch = min(max(epoch, self.start), self.end)
        stretch = self.stretches[max(0, bisect.bisect_right(self.starts, epoch) - 1)]
        share = (epoch - stretch.start) / (stretch.end - stretch.start)
        return round(stretch.left + (stretch.right - stretch.left) * share, 1)


def _quiet(gaps, total):
    """The gaps drawn narrow: longest first, each while it is longer than the time still drawn to scale without it."""
    quiet, to_scale = set(), total
    for gap in sorted(gaps, key=lambda gap: (gap[0] - gap[1], gap[0])):
        length = gap[1] - gap[0]
        if length < QUIET_MIN or length <= to_scale - length or to_scale - length <= 0:
            break  # short, or no longer than the rest, or the whole span: then all is drawn to scale
        quiet.add(gap)
        to_scale -= length
    return quiet


def _runs(cuts, quiet):
    """``(start, end, quiet)`` from the first cut to the last: the gaps drawn to scale joined, each quiet one alone."""
    runs = []
    for gap in itertools.pairwise(cuts):
        if gap in quiet:
            runs.append((*gap, True))
        elif runs and not runs[-1][2]:
            runs[-1] = (runs[-1][0], gap[1], False)
        else:
            runs.append((*gap, False))
    return runs


def _laid_out(runs, left, right):
    """The runs as :class:`Stretch`: each quiet one :data:`QUIET_WIDTH` wide, the others sharing the rest by their time."""
    to_scale = sum(end - start for start, end, quiet in runs if not quiet)
    width = right - left - QUIET_WIDTH * sum(1 for *_, quiet in runs if quiet)
    stretches, x = [], left
    for start, end, quiet in runs:
        step = QUIET_WIDTH if quiet else width * (end - start) / to_scale
        stretches.append(Stretch(start, end, x, x + step, quiet))
        x += step
    return stretches
