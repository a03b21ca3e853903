"""Front ends over one dialogue: ``conversation.Conversation`` holds the chat logic."""
