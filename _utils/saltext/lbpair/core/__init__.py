"""
The pieces every side uses: errors, the durable store, times, running a command, Salt's state return.
"""
