//! The local demo network lives in `demo/run` (a bash script, with its helpers in `demo.py`):
//! 4 nodes and 4 chat apps on loopback. See `demo/README.md`.
