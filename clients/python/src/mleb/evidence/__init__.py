"""Checking mleb's evidence offline: DSSE envelopes, in-toto statements, the audit chain.

Needs the `lab` extra (`pip install 'mleb[lab]'`), which adds `cryptography`.
"""
