"""The ``/tune_gc`` endpoint as data in, data out, and the path routing that every adapter shares."""
