import gc
import weakref

from monitor.runners.heap import YOUNG_THRESHOLDS, FrozenHeap


class _Node:
    pass


def test_survivors_of_a_batch_are_frozen_and_thresholds_restored():
    before = gc.get_threshold()
    with FrozenHeap() as heap:
        assert gc.get_threshold() == YOUNG_THRESHOLDS
        state = [_Node() for _ in range(1000)]
        frozen = gc.get_freeze_count()
        heap.settle()
        assert gc.get_freeze_count() >= frozen + len(state)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_cycle_among_frozen_objects_is_freed_by_the_sweep():
    with FrozenHeap(sweep_seconds=3600) as heap:
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        heap.settle()  # the cycle is frozen now
        del a, b
        gc.collect()
        assert gone() is not None  # a collection does not look at frozen objects
        heap.sweep()
        assert gone() is None


def test_settle_sweeps_once_the_interval_has_passed():
    with FrozenHeap(sweep_seconds=0) as heap:
        a = _Node()
        a.self = a
        gone = weakref.ref(a)
        del a
        heap.settle()  # due at once: unfreeze, collect, freeze again
        assert gone() is None
