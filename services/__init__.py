"""The replicated application: the public services behind one `Application` interface.
Deterministic: no clock, no randomness, no floats, no iteration over unordered sets."""
