"""Eval samples for a study, read in batches by a DataLoader, with one clear error for a bad image."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DataLoader, Dataset

from cams.loading import StudyInputError
from models.data import BadImageError, Sample


class _Samples(Dataset):
    """Eval samples by index; an unreadable image comes back as its error message, not an exception,
    so the main process can report it in one line."""

    def __init__(self, val: Dataset, indices: list[int]) -> None:
        self.val, self.indices = val, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[int, Sample | None, str | None]:
        try:
            return position, self.val.sample(self.indices[position]), None
        except (BadImageError, OSError) as error:
            return position, None, str(error)


def iterate_samples(
    val: Dataset, indices: list[int], batch_size: int, workers: int
) -> Iterator[list[tuple[int, Sample]]]:
    """Batches of (position, Sample) in order; raises StudyInputError on an unreadable image."""
    loader = DataLoader(
        _Samples(val, indices), batch_size=batch_size, num_workers=workers, collate_fn=list, shuffle=False
    )
    for batch in loader:
        for _, _, error in batch:
            if error is not None:
                raise StudyInputError(f"unreadable image: {error}")
        yield [(position, sample) for position, sample, _ in batch]


def sample_ids(val: Dataset) -> list[str]:
    """Every eval sample's id, in index order (from the listing when the dataset has one)."""
    items = getattr(val, "items", None)
    if isinstance(items, list) and all(isinstance(i, tuple) for i in items):
        return [relative for relative, _ in items]
    return [val.load(i).id for i in range(len(val))]
