package stock

// Queued is how many takes wait for the next POST /reserve.
func (c *Client) Queued() int { return c.takes.Queued() }
