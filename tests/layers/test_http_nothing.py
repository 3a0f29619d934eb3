"""NOTHING: the ended generator HTTP handlers return when they have no command to yield."""

from proxycore.layers.http._commands import NOTHING


def test_nothing_is_an_ended_generator_every_consumer_can_take_again_and_again():
    for _ in range(3):
        assert next(NOTHING, None) is None
        assert list(NOTHING) == []

    def delegating():
        result = yield from NOTHING
        yield result

    assert list(delegating()) == [None]  # ``yield from`` ends at once, returning None
