"""Test and benchmark scaffolding shared by tests/ and bench/; never imported by the product."""
