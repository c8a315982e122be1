"""Whether two partitions' bounds, as PostgreSQL prints them, may claim the same rows."""

from __future__ import annotations

import pytest

from replicator.plan.bounds import may_overlap


@pytest.mark.parametrize("a,b,overlap", [
    ("FOR VALUES IN ('a')", "FOR VALUES IN ('a', 'b')", True),
    ("FOR VALUES IN ('c')", "FOR VALUES IN ('a', 'b')", False),
    ("FOR VALUES IN ('it''s', 'x,y')", "FOR VALUES IN ('x,y')", True),
    ("FOR VALUES IN (1, 2)", "FOR VALUES IN (3)", False),
    ("FOR VALUES IN (NULL)", "FOR VALUES IN (NULL, 4)", True),
    ("FOR VALUES FROM ('2000-01-01') TO ('2001-01-01')", "FOR VALUES FROM ('2025-01-01') TO ('2025-02-01')", False),
    ("FOR VALUES FROM ('2025-01-15') TO ('2025-03-01')", "FOR VALUES FROM ('2025-01-01') TO ('2025-02-01')", True),
    ("FOR VALUES FROM ('2025-02-01') TO ('2025-03-01')", "FOR VALUES FROM ('2025-01-01') TO ('2025-02-01')", False),
    ("FOR VALUES FROM (MINVALUE) TO (0)", "FOR VALUES FROM (-5) TO (10)", True),
    ("FOR VALUES FROM (10) TO (MAXVALUE)", "FOR VALUES FROM (0) TO (10)", False),
    ("FOR VALUES FROM ('a', 1) TO ('b', 1)", "FOR VALUES FROM ('x', 1) TO ('y', 1)", True),  # several columns: may
    ("FOR VALUES FROM (0) TO ('10')", "FOR VALUES FROM (20) TO (30)", True),  # mixed: may
    ("FOR VALUES WITH (modulus 4, remainder 1)", "FOR VALUES WITH (modulus 8, remainder 5)", True),
    ("FOR VALUES WITH (modulus 4, remainder 1)", "FOR VALUES WITH (modulus 8, remainder 6)", False),
    ("DEFAULT", "FOR VALUES IN ('a')", True),
    ("FOR VALUES IN ('a')", None, True),
])
def test_may_overlap(a, b, overlap):
    assert may_overlap(a, b) is overlap
    assert may_overlap(b, a) is overlap
