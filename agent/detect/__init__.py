"""Detection: a log line becomes an Event (rules, log formats, the HTTP parser, injection)."""
