"""The pure core: pandas / numpy / scikit-learn on frames. No Django imports here
(an import-linter contract in setup.cfg enforces it)."""
