"""Console progress (steps, rate, ETA) for long loops; silent for small inputs so logs stay readable."""
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
MIN_ITEMS = 20_000  # below this a stage takes a few seconds: no bar


def progress(items: Iterable[T], desc: str, records: int | None = None, unit: str = "rec") -> Iterator[T]:
    """Wrap an iterable in a progress bar when it covers many records (or an unknown number: a streamed file).

    `records` is how many records the loop covers, when its items are batches rather than records.
    """
    total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    size = records if records is not None else total
    return iter(tqdm(items, desc=desc, total=total, unit=unit, unit_scale=True, mininterval=2.0,
                     disable=size is not None and size < MIN_ITEMS))
