"""What every stage shares: the home, the clock, SQL and connections, input limits, fault points."""
