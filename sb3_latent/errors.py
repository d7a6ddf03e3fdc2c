"""The one exception type for bad user input."""


class UserInputError(ValueError):
    """Bad input from the user: the message names the problem and the fix.

    Our command-line entry points (and rl-zoo3's, through the start-up hook) print it as one line
    instead of a traceback, since the traceback would only point into our own checks.
    """
