const express = require('express');
const app = express();
app.use(express.json());
const APP_PORT = process.env.APP_PORT || 3002;
// Dapr pub/sub subscription endpoint
app.get('/dapr/subscribe', (req, res) => {
res.json([
{
pubsubname: 'pubsub',
topic: 'orders',
route: '/orders'
}
]);
});
// Handle order events
app.post('/orders', (req, res) => {
const { data } = req.body;
console.log('? Sending notification for order:', data);
// Simulate sending email notification
console.log(`
✅ Order Confirmation
Order ID: ${data.orderId}
Customer: ${data.customerEmail}
Product: ${data.productId}
Quantity: ${data.quantity}
Thank you for your order! ?
`);
res.status(200).send();
});
app.listen(APP_PORT, () => {
console.log(`Notification service running on port ${APP_PORT}`);
});
