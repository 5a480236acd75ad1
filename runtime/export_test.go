package runtime

// FanoutMemoSize and FanoutMemoLen let the tests see the fan-out memory.
const FanoutMemoSize = fanoutMemoSize

func FanoutMemoLen(a *App, pubsub, topic string) int {
	for _, t := range a.topics {
		if t.sub.Pubsub == pubsub && t.sub.Topic == topic && t.memo != nil {
			return t.memo.len()
		}
	}
	return 0
}
