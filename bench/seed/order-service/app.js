const express = require('express');
const axios = require('axios');
const app = express();
app.use(express.json());
const DAPR_HTTP_PORT = process.env.DAPR_HTTP_PORT || 3500;
const APP_PORT = process.env.APP_PORT || 3000;
// Create a new order
app.post('/orders', async (req, res) => {
try {
const { productId, quantity, customerEmail } = req.body;
const orderId = `order-${Date.now()}`;
// Check inventory using Dapr service invocation
const inventoryResponse = await axios.post(
`http://localhost:${DAPR_HTTP_PORT}/v1.0/invoke/inventory-service/method/check`,
{ productId, quantity }
);
if (!inventoryResponse.data.available) {
return res.status(400).json({ error: 'Insufficient inventory' });
}
// Store order using Dapr state management
const order = {
id: orderId,
productId,
quantity,
customerEmail,
status: 'confirmed',
createdAt: new Date()
};
await axios.post(
`http://localhost:${DAPR_HTTP_PORT}/v1.0/state/statestore`,
[{ key: orderId, value: order }]
);
// Publish order event using Dapr pub/sub
await axios.post(
`http://localhost:${DAPR_HTTP_PORT}/v1.0/publish/pubsub/orders`,
{
orderId,
customerEmail,
productId,
quantity
}
);
res.json({ orderId, status: 'Order created successfully' });
} catch (error) {
console.error('Error creating order:', error.message);
res.status(500).json({ error: 'Failed to create order' });
}
});
// Get order by ID
app.get('/orders/:id', async (req, res) => {
try {
const response = await axios.get(
`http://localhost:${DAPR_HTTP_PORT}/v1.0/state/statestore/${req.params.id}`
);
if (!response.data) {
return res.status(404).json({ error: 'Order not found' });
}
res.json(response.data);
} catch (error) {
console.error('Error fetching order:', error.message);
res.status(500).json({ error: 'Failed to fetch order' });
}
});
app.listen(APP_PORT, () => {
console.log(`Order service running on port ${APP_PORT}`);
});
