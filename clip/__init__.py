from .clip import *  # noqa: F401,F403  (OpenAI layout: `import clip` and `from clip import clip` both work)
