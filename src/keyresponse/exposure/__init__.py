"""Where a key leaked: a search of git histories (`gitscan`) and of plain files for the
leaked value, or for its redacted shape when the run has no value (`needle`), and what
the findings say about how it leaked (`cause`).

No value ever leaves memory: git reads objects through stdin/stdout pipes, the matching
is done here, and a finding carries only the mask and a fingerprint of what matched.
"""
