"""Values at points that do not exist are never read: an inf or NaN there changes nothing."""
import numpy as np
import pytest

from einsum_ir import evaluate, loads

MASKED_COLUMN = """rank I = 2, J = 4
input A[i,j], B[j]
output O[i]
O[i] = sum[j] A[i,j] * B[j] where j < 2
"""

MASK_OVER_OTHER_LABELS = """rank I = 3, J = 3
input A[j], B[i]
output O[i]
O[i] = sum[j] A[j] * B[i] where i < j
"""


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_input_at_masked_points_is_not_read(bad):
    a = np.ones((2, 4))
    a[:, 3] = bad
    out = evaluate(loads(MASKED_COLUMN), {"A": a, "B": np.ones(4)})["O"]
    np.testing.assert_array_equal(out, [2.0, 2.0])


def test_mask_over_labels_the_factor_lacks():
    a = np.array([np.inf, 1.0, 1.0])  # A[0] is read by no point: i < 0 never holds
    out = evaluate(loads(MASK_OVER_OTHER_LABELS), {"A": a, "B": np.ones(3)})["O"]
    np.testing.assert_array_equal(out, [2.0, 1.0, 0.0])


def test_non_finite_at_existing_points_still_counts():
    a = np.ones((2, 4))
    a[0, 0] = np.inf
    out = evaluate(loads(MASKED_COLUMN), {"A": a, "B": np.ones(4)})["O"]
    assert out[0] == np.inf and out[1] == 2.0
