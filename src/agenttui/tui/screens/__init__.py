"""Screens: help, test detail, confirmation."""
