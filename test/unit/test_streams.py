"""Stream ids, budgets and baseline allocations (admn_ros.core.streams)."""
import pytest

from admn_ros.core import streams as st


def test_default_stream_set_is_node_major():
    ss = st.StreamSet()
    assert ss.ids[:4] == ["node1/rgb", "node1/depth", "node1/radar", "node2/rgb"]
    assert len(ss) == 9 and ss.total_blocks == 108
    assert ss.modality_of(4) == "depth"
    assert ss.index("node3/radar") == 8
    with pytest.raises(KeyError, match="node1/rgb"):
        ss.index("node9/rgb")


def test_stream_id_validation_names_the_problem():
    with pytest.raises(ValueError, match="unknown modality 'lidar'"):
        st.stream_id("node1", "lidar")
    with pytest.raises(ValueError, match="expected '<node>/<modality>'"):
        st.split_stream_id("node1rgb")
    with pytest.raises(ValueError, match="full node x modality grid"):
        st.StreamSet.from_ids(["node1/rgb", "node2/depth"])
    assert st.StreamSet.from_ids(["node1/rgb", "node1/depth"]).ids == ["node1/rgb", "node1/depth"]


@pytest.mark.parametrize("frac,expected", [(0.25, 27), (0.33, 36), (0.5, 54), (0.67, 72), (1.0, 108)])
def test_budget_fractions_of_default_set(frac, expected):
    assert st.budget_from_fraction(frac, 9) == expected


def test_budget_validation():
    assert st.validate_budget(9, 9) == 9
    with pytest.raises(ValueError, match="first block"):
        st.validate_budget(8, 9)
    with pytest.raises(ValueError, match="out of range"):
        st.validate_budget(109, 9)
    assert st.validate_budget(1, 9, first_block=False) == 1
    with pytest.raises(ValueError, match=r"\[1, 108\]"):
        st.validate_budget(0, 9, first_block=False)
    assert not st.naive_allocation(9, 0).any()  # the no-block mask (engine benchmark's first row)
    with pytest.raises(ValueError, match="cannot place 109 blocks"):
        st.naive_allocation(9, 109)


def test_every_other_blocks():
    assert st.every_other_blocks(6) == [0, 2, 4, 6, 8, 10]
    assert st.every_other_blocks(3) == [0, 4, 8]
    assert st.every_other_blocks(12) == list(range(12))
    assert st.every_other_blocks(0) == []
    for k in range(1, 13):
        b = st.every_other_blocks(k)
        assert len(set(b)) == k and b[0] == 0


def test_naive_allocation_even_split():
    m = st.naive_allocation(9, 27)
    assert m.shape == (9, 12) and m.sum() == 27
    assert (m.sum(1) == 3).all() and m[:, 0].all()
    m = st.naive_allocation(9, 40)  # 40 = 4*9 + 4 -> first four streams get 5
    assert list(m.sum(1)) == [5, 5, 5, 5, 4, 4, 4, 4, 4]
    assert m.sum() == 40


def test_modality_allocation_spends_budget_on_kept_modalities():
    ss = st.StreamSet()
    m = st.modality_allocation(ss, 27, keep=["rgb"])
    assert m.sum() == 27 and m[:, 0].all()
    rgb = [ss.index(f"node{i}/rgb") for i in (1, 2, 3)]
    assert m[rgb].sum() == 27 - 6 and all(m[i].sum() == 1 for i in range(9) if i not in rgb)
    with pytest.raises(ValueError, match="exceeds"):
        st.modality_allocation(ss, 108, keep=["rgb"])
