"""The audit engine: policies, check types, hosts and reports."""
