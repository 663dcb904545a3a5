"""What the timing tests share: the medians of two kinds of attempt, compared."""

import statistics
from collections.abc import Sequence


def median_ratio(
    what: str, names: tuple[str, str], first: Sequence[float], second: Sequence[float]
) -> float:
    """The median of ``second`` over the median of ``first`` (seconds), printed
    for the run's log with both medians."""
    first_median, second_median = statistics.median(first), statistics.median(second)
    ratio = second_median / first_median
    print(
        f"\n{what} median: {names[0]} {first_median * 1000:.2f} ms, "
        f"{names[1]} {second_median * 1000:.2f} ms, ratio {ratio:.2f}"
    )
    return ratio
