"""The application layer: the runs a command or a notebook starts (search, quantize, export, explore).

Each orchestrates library packages; `nasearch.cli` and the notebooks call these, and no library
package imports them.
"""
