"""The lifecycle engine every worker runs on; it knows no worker.

It turns an event into a document read, a selection and a run of a unit of work through the
worker's lifecycle table (`lifecycle`, `runner`), and owns what every worker shares: gated
claims and finalizes with preconditions (`gates`), leases, the time budget, logging with its
safety gates, configuration basics and exit codes. A worker brings its table, one module per
state, its contracts and the ports it needs (`states/<worker>/`); `adapters/` does the I/O.
"""
