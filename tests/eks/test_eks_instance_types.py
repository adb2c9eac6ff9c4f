"""The instance-type table agrees with the chart's GPU-label contract and explains unknown types."""

from __future__ import annotations

import pytest

from loraxkit.chart.profiles import ACCELERATORS
from loraxkit.eks.instance_types import INSTANCE_TYPES, lookup


def test_gpu_labels_follow_the_chart_contract() -> None:
    for itype in INSTANCE_TYPES.values():
        family = itype.name.split(".")[0]
        if family in ACCELERATORS:
            assert itype.accelerator_label == ACCELERATORS[family], itype.name


def test_every_contract_family_has_instance_types() -> None:
    families = {t.name.split(".")[0] for t in INSTANCE_TYPES.values()}
    assert set(ACCELERATORS) <= families


def test_gpu_rows_are_complete() -> None:
    for itype in INSTANCE_TYPES.values():
        if itype.gpu_count:
            assert itype.gpu_model and itype.gpu_memory_gib and itype.accelerator_label, itype.name
        assert itype.usd_per_hour > 0 and itype.vcpus > 0 and itype.memory_gib > 0, itype.name


def test_unknown_type_says_how_to_fix_it() -> None:
    with pytest.raises(KeyError, match="add a row with its GPU count"):
        lookup("g9x.huge")
