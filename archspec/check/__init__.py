"""Checking the analysis against the numbers the papers print."""

from .check import Printed, Row, check_network, parse_printed

__all__ = ["Printed", "Row", "check_network", "parse_printed"]
