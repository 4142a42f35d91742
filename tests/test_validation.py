"""tfsonify.validation: the shared argument checks and their messages."""
import numpy as np
import pytest

from tfsonify.validation import check_choice, check_int, preview


def test_check_int_accepts_python_and_numpy_integers():
    assert check_int("k", 3, minimum=1) == 3 and isinstance(check_int("k", np.int64(3), minimum=1), int)
    assert check_int("layer", 11, 1, 11) == 11 and check_int("n", None, minimum=1, allow_none=True) is None


@pytest.mark.parametrize("value, kwargs, message", [
    (0, dict(minimum=1), "k must be a positive integer; received 0"),
    (True, dict(minimum=1), "k must be a positive integer; received True"),
    (2.0, dict(minimum=1), "k must be a positive integer; received 2.0"),
    (-1, dict(minimum=0), "k must be a non-negative integer; received -1"),
    (12, dict(minimum=1, maximum=11), "k must be an integer in 1..11; received 12"),
    (1, dict(minimum=2), "k must be an integer >= 2; received 1"),
    (0, dict(minimum=1, allow_none=True), "k must be None or a positive integer; received 0"),
    (0, dict(minimum=1, maximum=4, detail=" (block 1's maps)"), r"k must be an integer in 1..4 \(block 1's maps\)"),
    (0, dict(minimum=1, expected="a block index"), "k must be a block index; received 0"),
])
def test_check_int_messages(value, kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_int("k", value, **kwargs)


def test_check_choice_and_preview():
    assert check_choice("mode", "full", ("fconly", "full")) == "full"
    with pytest.raises(ValueError, match=r"mode must be one of \('fconly', 'full'\); received 'linear'"):
        check_choice("mode", "linear", ("fconly", "full"))
    assert preview(range(3)) == "0, 1, 2" and preview(range(8), limit=2) == "0, 1, ... (6 more)"
