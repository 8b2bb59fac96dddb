"""Calibration from the user's own benchmarks: read result files (:mod:`.formats`), replay them
through a scenario (:mod:`.replay`), fit a few bounded knobs and report held-out error
(:mod:`.fit`), and write the fitted knobs as an overlay ``infersim run --overlay`` applies
(:mod:`.overlay`)."""
