"""`keyresponse serve`: a signed webhook receiver that contains a leak within seconds.

Scanners post alerts (GitHub secret scanning, GitGuardian, or any payload `--from-alert`
reads, posted from CI with a bearer token). Each request is verified (`signatures`),
matched to a rule (`policy`), journaled (`queue`) before it is answered 202, and run by a
bounded pool of workers through the same Engine and per-key lock as `keyresponse run`.
Imported only by the `serve` command: nothing here loads at `keyresponse` start-up.
"""
