"""Type stub for the native module ``pulsing._pulsing`` (kept by hand; see src/lib.rs).

The exception classes are the ones defined in :mod:`pulsing.exceptions`; the native module
re-exports the same objects.
"""

from pulsing.exceptions import ActorError as ActorError
from pulsing.exceptions import ActorNotFoundError as ActorNotFoundError
from pulsing.exceptions import ActorStoppedError as ActorStoppedError
from pulsing.exceptions import AskTimeoutError as AskTimeoutError
from pulsing.exceptions import BadMessageError as BadMessageError
from pulsing.exceptions import MailboxFullError as MailboxFullError
from pulsing.exceptions import NodeUnreachableError as NodeUnreachableError
from pulsing.exceptions import PulsingError as PulsingError

__version__: str
