"""The pure domain core: credit rules, the hash chain and projections as folds over entries.

Nothing in this package performs I/O or imports an adapter; everything is typed strictly
(mypy --strict). Words follow docs/domain.md: learner, issuer, course, completion,
credit entry, revocation, consent, transcript.
"""
