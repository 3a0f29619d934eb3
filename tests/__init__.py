"""The test suite (docs/testing.md): test files live in folders by concern (tests/layers/,
tests/e2e/, ...); the modules here are the helpers they share."""
