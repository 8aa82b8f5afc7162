"""Values the ORM integrations read from rows become commit values that
`check_commit` accepts: a NaN float or a huge integer, valid in a database,
must not make the whole commit (and its invalidations) be given up."""

import math

from invalidator import check_commit
from invalidator.contrib._rows import scalar


def test_values_json_cannot_carry_become_text() -> None:
    assert scalar(math.nan) == "nan"
    assert scalar(math.inf) == "inf"
    assert scalar(-math.inf) == "-inf"
    assert scalar(2**63) == str(2**63)
    assert scalar(-(2**63) - 1) == str(-(2**63) - 1)
    assert scalar(2**63 - 1) == 2**63 - 1
    assert scalar(-(2**63)) == -(2**63)
    assert scalar(True) is True
    assert scalar(1.5) == 1.5
    row = {"id": 1, "amount": scalar(math.nan), "big": scalar(10**30)}
    check_commit(
        {"txn": "t", "writes": [{"table": "geld", "op": "insert", "key": {"id": 1}, "after": row}]}
    )
