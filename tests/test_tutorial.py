"""PyTorch's "Training a classifier" tutorial (the CIFAR-10 CNN), run with minicnn in place of
torch (issue 16, item 7).

The code inside ``run_tutorial`` is the tutorial's, unchanged apart from the imports and the data
set: instead of torchvision's CIFAR-10 (not installed, and large) it trains on the Fashion-MNIST
subset that ships inside minicnn, padded to 32x32 and repeated over 3 channels so that the
tutorial's 3x32x32 network takes it, with the tutorial's batch size 4. The print-out cadence
(``i % 2000 == 1999``) is scaled down with the data, like the number of images.
"""
import numpy as np

import minicnn as torch                       # <- the only changed lines: the imports ...
import minicnn.nn as nn
import minicnn.nn.functional as F
import minicnn.optim as optim
from minicnn.data import ArrayDataset, DataLoader, Normalize, load_bundled_subset

PRINT_EVERY = 125      # the tutorial prints every 2000 mini-batches of its 12,500


def tutorial_data(per_class_train=200, per_class_test=20):
    """... and the data: (trainloader, testloader, classes) like the tutorial's CIFAR-10 ones
    (3x32x32 images normalised to [-1, 1], batches of 4, the training set shuffled)."""
    def subset(train, per_class):
        images, labels = load_bundled_subset(train=train)
        keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
        images = np.pad(images[keep], ((0, 0), (2, 2), (2, 2)))          # 28x28 -> 32x32
        images = np.repeat(images[:, None], 3, axis=1)                   # 1 -> 3 channels
        return ArrayDataset(images, labels[keep], transform=Normalize(0.5, 0.5))

    trainloader = DataLoader(subset(True, per_class_train), batch_size=4, shuffle=True, seed=0)
    testloader = DataLoader(subset(False, per_class_test), batch_size=4, shuffle=False)
    classes = ('T-shirt', 'Trouser', 'Pullover', 'Dress', 'Coat',
               'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Boot')
    return trainloader, testloader, classes


def run_tutorial(trainloader, testloader, classes, PATH, epochs=2):
    # ---- from here on, the tutorial's code ----------------------------------------------------
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = torch.flatten(x, 1)  # flatten all dimensions except batch
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            x = self.fc3(x)
            return x

    net = Net()

    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

    for epoch in range(epochs):  # loop over the dataset multiple times

        running_loss = 0.0
        for i, data in enumerate(trainloader, 0):
            # get the inputs; data is a list of [inputs, labels]
            inputs, labels = data

            # zero the parameter gradients
            optimizer.zero_grad()

            # forward + backward + optimize
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()

            # print statistics
            running_loss += loss.item()
            if i % PRINT_EVERY == PRINT_EVERY - 1:    # print every PRINT_EVERY mini-batches
                print(f'[{epoch + 1}, {i + 1:5d}] loss: {running_loss / PRINT_EVERY:.3f}')
                running_loss = 0.0

    print('Finished Training')

    torch.save(net.state_dict(), PATH)

    dataiter = iter(testloader)
    images, labels = next(dataiter)
    print('GroundTruth: ', ' '.join(f'{classes[labels[j]]:5s}' for j in range(4)))

    net = Net()
    net.load_state_dict(torch.load(PATH, weights_only=True))

    outputs = net(images)
    _, predicted = torch.max(outputs, 1)
    print('Predicted: ', ' '.join(f'{classes[predicted[j]]:5s}' for j in range(4)))

    correct = 0
    total = 0
    # since we're not training, we don't need to calculate the gradients for our outputs
    with torch.no_grad():
        for data in testloader:
            images, labels = data
            # calculate outputs by running images through the network
            outputs = net(images)
            # the class with the highest energy is what we choose as prediction
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()

    print(f'Accuracy of the network on the {total} test images: {100 * correct // total} %')

    # prepare to count predictions for each class
    correct_pred = {classname: 0 for classname in classes}
    total_pred = {classname: 0 for classname in classes}

    # again no gradients needed
    with torch.no_grad():
        for data in testloader:
            images, labels = data
            outputs = net(images)
            _, predictions = torch.max(outputs, 1)
            # collect the correct predictions for each class
            for label, prediction in zip(labels, predictions):
                if label == prediction:
                    correct_pred[classes[label]] += 1
                total_pred[classes[label]] += 1

    # print accuracy for each class
    for classname, correct_count in correct_pred.items():
        accuracy = 100 * float(correct_count) / total_pred[classname]
        print(f'Accuracy for class: {classname:5s} is {accuracy:.1f} %')

    device = torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')
    print(device)
    net.to(device)
    inputs, labels = data[0].to(device), data[1].to(device)
    # ---- end of the tutorial's code -------------------------------------------------------------
    return net, correct, total, correct_pred, total_pred, inputs, labels


def test_the_tutorial_runs_unchanged_and_learns(tmp_path, capsys):
    torch.manual_seed(0)
    trainloader, testloader, classes = tutorial_data()
    path = str(tmp_path / "cifar_net.pth")
    net, correct, total, correct_pred, total_pred, inputs, labels = run_tutorial(
        trainloader, testloader, classes, path)
    printed = capsys.readouterr().out.splitlines()

    # the training loop printed its running loss, and the loss went down
    losses = [float(line.rsplit("loss: ", 1)[1]) for line in printed if "] loss: " in line]
    assert len(losses) == 2 * (len(trainloader) // PRINT_EVERY)
    assert losses[-1] < losses[0]
    assert "Finished Training" in printed
    assert any(line.startswith("GroundTruth: ") for line in printed)
    assert any(line.startswith("Predicted: ") for line in printed)

    # evaluation: every test image counted, better than chance (10 classes)
    assert total == len(testloader.dataset) == sum(total_pred.values())
    assert correct == sum(correct_pred.values())
    assert correct / total > 0.3
    assert sum(line.startswith("Accuracy for class: ") for line in printed) == 10

    # the accuracy above is the RELOADED net's: the checkpoint holds exactly its state
    reloaded = torch.load(path)
    assert list(reloaded) == list(net.state_dict())
    assert all(np.array_equal(reloaded[k], v) for k, v in net.state_dict().items())
    assert printed[-1] in ("cpu", "cuda:0") and inputs.shape[1:] == (3, 32, 32)
    assert labels.dtype == np.int64
