"""The native (/generate) request side of the wire format: errors, serde kinds, leniency, merges, params, limits. (work in progress)"""
