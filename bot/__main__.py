from bot.entry import entry

entry()
