// DPAccounting: placeholder, filled by its issue.
