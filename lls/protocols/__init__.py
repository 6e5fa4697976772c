"""Experimental protocols shared by several chapters (see :mod:`lls.protocols.forget_recover`)."""
