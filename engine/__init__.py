"""What any step lifecycle needs: the machine table, the runner, contracts, ports, errors."""
