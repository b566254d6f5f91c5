"""The one scan loop behind `wwhub scan` and the Prefect flows: options, outcomes, the lake's ledger."""
