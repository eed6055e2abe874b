"""Huge-page copies of inference weights: same numbers, their own memory, 2 MB pages where Linux gives them."""

from pathlib import Path

import pytest
import torch

from attend.models import huge_pages
from attend.models.huge_pages import on_huge_pages


def _huge_kb_at(address: int) -> int:
    """AnonHugePages of the mapping that holds `address`, from /proc/self/smaps."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and ":" not in head:
            start, end = (int(part, 16) for part in head.split("-"))
            inside = start <= address < end
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1])
    return 0


def _thp_mode() -> str:
    path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    text = path.read_text() if path.exists() else "[never]"
    return text[text.index("[") + 1:text.index("]")]


def test_copies_are_equal_independent_aligned_and_of_every_layout():
    weight = torch.randn(300, 70)
    copies = [on_huge_pages(weight), on_huge_pages(weight.t()), on_huge_pages(torch.arange(5))]
    assert torch.equal(copies[0], weight) and torch.equal(copies[1], weight.t()) and copies[2].tolist() == [0, 1, 2, 3, 4]
    assert all(c.is_contiguous() and c.data_ptr() % huge_pages.ALIGN == 0 for c in copies)
    weight.zero_()  # the copies are not views of the source
    assert copies[0].abs().sum() > 0


def test_copies_made_in_inference_mode_serve_outside_it():
    with torch.inference_mode():
        first = on_huge_pages(torch.ones(4, 4))
    second = on_huge_pages(torch.full((4, 4), 2.0))  # from the same mapping, outside inference mode
    assert not first.is_inference() and torch.equal(first @ second, torch.full((4, 4), 8.0))


def test_weights_larger_than_a_slab_get_a_mapping_of_their_own():
    big = torch.randn(huge_pages.SLAB_BYTES // 4 + 1000)
    assert torch.equal(on_huge_pages(big), big)


@pytest.mark.skipif(not huge_pages.available() or _thp_mode() == "never",
                    reason="no transparent huge pages on this system")
def test_the_memory_is_on_2mb_pages():
    copy = on_huge_pages(torch.randn(huge_pages.HUGE_PAGE // 4))  # at least one whole 2 MB page
    assert _huge_kb_at(copy.data_ptr()) >= 2048


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("ATTEND_HUGE_PAGES", "0")
    weight = torch.randn(3, 3)
    assert on_huge_pages(weight) is weight
    transposed = on_huge_pages(weight.t())  # still the contiguous layout the caller asked for
    assert transposed.is_contiguous() and torch.equal(transposed, weight.t())
